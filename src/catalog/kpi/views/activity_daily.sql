-- kpi.activity_daily: per local day and manager: calls, meetings, emails, messages, tasks
-- created and tasks completed (for the task's responsible manager).
WITH events AS (
    SELECT local_date(started_at, ${tz}) AS day, manager_id, 1 AS calls, 0 AS meetings, 0 AS emails, 0 AS messages,
           0 AS tasks_created, 0 AS tasks_completed
    FROM crm.calls
    UNION ALL
    SELECT local_date(created_at, ${tz}), manager_id,
           0, CASE WHEN kind = 'meeting' THEN 1 ELSE 0 END, CASE WHEN kind = 'email' THEN 1 ELSE 0 END,
           CASE WHEN kind = 'message' THEN 1 ELSE 0 END, 0, 0
    FROM crm.activities WHERE kind IN ('meeting', 'email', 'message')
    UNION ALL
    SELECT local_date(created_at, ${tz}), manager_id, 0, 0, 0, 0, 1, 0 FROM crm.tasks
    UNION ALL
    SELECT local_date(completed_at, ${tz}), manager_id, 0, 0, 0, 0, 0, 1 FROM crm.tasks
    WHERE completed_at IS NOT NULL AND status = 'completed'
)
SELECT day, manager_id,
       CAST(sum(calls) AS BIGINT) AS calls, CAST(sum(meetings) AS BIGINT) AS meetings,
       CAST(sum(emails) AS BIGINT) AS emails, CAST(sum(messages) AS BIGINT) AS messages,
       CAST(sum(tasks_created) AS BIGINT) AS tasks_created, CAST(sum(tasks_completed) AS BIGINT) AS tasks_completed
FROM events
GROUP BY day, manager_id
