"""Real-time signals: the live loop (kimp.serving.live), the served champion (kimp.serving.champion), the
service's domain (kimp.serving.service) and its thin ASGI layer (kimp.serving.api). See docs/serving.md."""
