-- kpi.discipline: one row per manager (active or not): overdue and untaken tasks, open
-- deals without follow-up, overdue activities, stale deals, leads not taken in time and the
-- average response, as of the snapshot.
WITH tasks AS (
    SELECT manager_id, count(CASE WHEN is_overdue THEN 1 END) AS overdue_tasks,
           count(CASE WHEN is_not_taken THEN 1 END) AS tasks_not_taken
    FROM kpi.task_facts GROUP BY manager_id
),
open_activity AS (
    SELECT DISTINCT deal_id FROM crm.activities WHERE deal_id IS NOT NULL AND NOT is_completed
),
deals AS (
    SELECT f.manager_id,
           count(CASE WHEN f.status = 'open' AND f.open_tasks = 0 AND oa.deal_id IS NULL THEN 1 END) AS open_deals_without_tasks,
           count(CASE WHEN f.status = 'open' AND f.has_overdue_activity THEN 1 END) AS deals_with_overdue_activities,
           count(CASE WHEN f.is_stale THEN 1 END) AS stale_deals
    FROM kpi.deal_facts f LEFT JOIN open_activity oa ON oa.deal_id = f.deal_id
    GROUP BY f.manager_id
),
leads AS (
    SELECT manager_id, count(CASE WHEN taken_in_time = false OR is_overdue_untaken THEN 1 END) AS leads_untaken_in_time
    FROM kpi.lead_facts GROUP BY manager_id
),
responses AS (
    SELECT manager_id, avg(response_minutes) AS avg_response_minutes
    FROM (SELECT manager_id, response_minutes FROM kpi.deal_facts
          UNION ALL SELECT manager_id, response_minutes FROM kpi.lead_facts) r
    GROUP BY manager_id
)
SELECT m.manager_id,
       coalesce(t.overdue_tasks, 0) AS overdue_tasks,
       coalesce(t.tasks_not_taken, 0) AS tasks_not_taken,
       coalesce(d.open_deals_without_tasks, 0) AS open_deals_without_tasks,
       coalesce(d.deals_with_overdue_activities, 0) AS deals_with_overdue_activities,
       coalesce(d.stale_deals, 0) AS stale_deals,
       coalesce(l.leads_untaken_in_time, 0) AS leads_untaken_in_time,
       r.avg_response_minutes
FROM crm.managers m
LEFT JOIN tasks t ON t.manager_id = m.manager_id
LEFT JOIN deals d ON d.manager_id = m.manager_id
LEFT JOIN leads l ON l.manager_id = m.manager_id
LEFT JOIN responses r ON r.manager_id = m.manager_id
