-- kpi.calls_daily: calls per local day and manager: directions, success, talk time,
-- missed calls and their callbacks.
WITH totals AS (
    SELECT day, manager_id, department_id,
           count(*) AS calls_total,
           count(CASE WHEN direction = 'inbound' THEN 1 END) AS inbound,
           count(CASE WHEN direction = 'outbound' THEN 1 END) AS outbound,
           count(CASE WHEN is_successful THEN 1 END) AS successful,
           coalesce(sum(CASE WHEN is_successful THEN duration_seconds END), 0) / 60.0 AS successful_minutes,
           count(CASE WHEN is_missed THEN 1 END) AS missed,
           count(CASE WHEN status = 'answered' THEN 1 END) AS answered,
           avg(CASE WHEN status = 'answered' THEN CAST(duration_seconds AS DOUBLE) END) AS avg_talk_seconds,
           count(CASE WHEN is_missed AND callback_at IS NOT NULL THEN 1 END) AS missed_with_callback,
           avg(CASE WHEN is_missed THEN callback_minutes END) AS avg_callback_minutes
    FROM kpi.call_facts
    GROUP BY day, manager_id, department_id
)
SELECT day, manager_id, department_id, calls_total, inbound, outbound, successful, successful_minutes, missed,
       CAST(answered AS DOUBLE) / NULLIF(CAST(calls_total AS DOUBLE), 0) AS answered_rate,
       avg_talk_seconds, missed_with_callback, avg_callback_minutes
FROM totals
