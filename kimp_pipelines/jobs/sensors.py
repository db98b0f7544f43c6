"""Sensors: new or changed real-data files trigger the days they touch."""

import json

from dagster import (
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from kimp.market_data.file_changes import changed_files, days_touched, digest, snapshot
from kimp.settings import Settings

# History is backfilled on purpose (UI or `kimp materialize`); the sensor keeps the recent days current.
MAX_DAYS_PER_TICK = 7


def build_new_files_sensor(
    settings: Settings, market_data_job: object, partitions: DailyPartitionsDefinition
) -> SensorDefinition:
    @sensor(
        job=market_data_job,  # type: ignore[arg-type]
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.STOPPED,
        description="With KIMP_SOURCE=files: when candle or USD/KRW files appear or change under KIMP_DATA_DIR, "
        f"re-materialize the (at most {MAX_DAYS_PER_TICK} most recent) days they touch.",
    )
    def new_market_files(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        if settings.source != "files" or not settings.data_dir:
            return SkipReason(
                f"KIMP_SOURCE is {settings.source!r}; this sensor watches the files source only"
            )
        current = snapshot(settings.data_dir)
        previous = json.loads(context.cursor) if context.cursor else {}
        changed = changed_files(previous, current)
        if not changed:
            return SkipReason(f"no new or changed files among {len(current)} under {settings.data_dir}")
        valid = set(partitions.get_partition_keys())
        days = sorted(
            d.isoformat() for d in days_touched(settings.data_dir, changed) if d.isoformat() in valid
        )
        version = digest(current, changed)
        context.log.info(
            f"{len(changed)} changed file(s) {changed[:5]} touch {len(days)} day(s); requesting {days[-MAX_DAYS_PER_TICK:]}"
        )
        # run_key = day + the changed files' versions: re-evaluating the same change never launches twice.
        requests = [
            RunRequest(partition_key=day, run_key=f"files:{day}:{version}")
            for day in days[-MAX_DAYS_PER_TICK:]
        ]
        return SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))

    return new_market_files
