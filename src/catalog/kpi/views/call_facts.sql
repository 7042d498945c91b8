-- kpi.call_facts: one row per call, with the manager, the local day, success, missed, and
-- the callback of a missed call (the first outbound call to the same number within
-- calls.callback_window_hours).
WITH missed AS (
    SELECT call_id, phone_hash, started_at
    FROM crm.calls
    WHERE direction = 'inbound' AND status <> 'answered' AND phone_hash IS NOT NULL
),
callbacks AS (
    SELECT mc.call_id, min(o.started_at) AS callback_at
    FROM missed mc
    JOIN crm.calls o
      ON o.phone_hash = mc.phone_hash
     AND o.direction = 'outbound'
     AND o.started_at > mc.started_at
     AND o.started_at <= mc.started_at + INTERVAL '${calls.callback_window_hours} hours'
    GROUP BY mc.call_id
)
SELECT c.*,
       m.name AS manager_name,
       m.department_id,
       local_date(c.started_at, ${tz}) AS day,
       coalesce(is_successful_call(c.duration_seconds, ${calls.success_threshold_seconds}, c.status = 'answered'), false) AS is_successful,
       (c.direction = 'inbound' AND c.status <> 'answered') AS is_missed,
       cb.callback_at,
       (date_part('epoch', cb.callback_at) - date_part('epoch', c.started_at)) / 60.0 AS callback_minutes
FROM crm.calls c
LEFT JOIN crm.managers m ON m.manager_id = c.manager_id
LEFT JOIN callbacks cb ON cb.call_id = c.call_id
