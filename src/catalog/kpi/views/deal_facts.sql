-- kpi.deal_facts: one row per deal, with names, client, first/repeat sale, cycle, first
-- contact and response time in working minutes, touches, staleness and open work.
WITH history AS (
    SELECT deal_id, entered_at,
           row_number() OVER (PARTITION BY deal_id ORDER BY entered_at, stage_id) AS n
    FROM crm.deal_stage_history
),
touches AS (
    -- A touch: a call, an activity other than a task, or a stage change after the first.
    -- company: whether the company made it (outbound or answered call, outbound or
    -- direction-less activity, stage change), the kinds that count as first contact.
    SELECT deal_id, started_at AS at, true AS is_call,
           (direction = 'outbound' OR status = 'answered') AS company
    FROM crm.calls WHERE deal_id IS NOT NULL
    UNION ALL
    SELECT deal_id, created_at, false, (direction IS NULL OR direction = 'outbound')
    FROM crm.activities WHERE deal_id IS NOT NULL AND kind <> 'task'
    UNION ALL
    SELECT deal_id, entered_at, false, true FROM history WHERE n > 1
),
deal_touches AS (
    SELECT d.deal_id,
           min(CASE WHEN t.company AND t.at >= d.created_at THEN t.at END) AS first_contact_at,
           max(t.at) AS last_touch_at,
           count(CASE WHEN t.at < d.closed_at THEN 1 END) AS touches_before_close,
           count(CASE WHEN t.is_call AND t.at < d.closed_at THEN 1 END) AS calls_before_close
    FROM crm.deals d JOIN touches t ON t.deal_id = d.deal_id
    GROUP BY d.deal_id
),
open_tasks AS (
    SELECT deal_id, count(*) AS open_tasks
    FROM crm.tasks WHERE deal_id IS NOT NULL AND status NOT IN ('completed', 'cancelled')
    GROUP BY deal_id
),
overdue_activities AS (
    SELECT DISTINCT deal_id
    FROM crm.activities
    WHERE deal_id IS NOT NULL AND NOT is_completed AND deadline < ${taken_at}
)
SELECT d.*,
       p.name AS pipeline_name,
       s.name AS stage_name,
       m.name AS manager_name,
       m.department_id,
       dep.name AS department_name,
       coalesce(d.company_id, d.contact_id) AS client_id,
       src.name AS source_name,
       src.channel,
       src.is_online,
       lr.name AS loss_reason_name,
       coalesce(cd.is_first_sale, false) AS is_first_sale,
       CASE WHEN d.closed_at IS NOT NULL
            THEN (date_part('epoch', d.closed_at) - date_part('epoch', d.created_at)) / 86400.0 END AS cycle_days,
       dt.first_contact_at,
       working_seconds(d.created_at, dt.first_contact_at, ${calendar}, d.manager_id) / 60.0 AS response_minutes,
       CASE WHEN d.status = 'open' THEN NULL ELSE coalesce(dt.touches_before_close, 0) END AS touches_before_close,
       CASE WHEN d.status = 'open' THEN NULL ELSE coalesce(dt.calls_before_close, 0) END AS calls_before_close,
       dt.last_touch_at,
       (d.status = 'open'
        AND date_part('epoch', ${taken_at}) - date_part('epoch', coalesce(dt.last_touch_at, d.created_at))
            > ${discipline.stale_days} * 86400) AS is_stale,
       coalesce(ot.open_tasks, 0) AS open_tasks,
       oa.deal_id IS NOT NULL AS has_overdue_activity
FROM crm.deals d
LEFT JOIN crm.pipelines p ON p.pipeline_id = d.pipeline_id
LEFT JOIN crm.stages s ON s.stage_id = d.stage_id
LEFT JOIN crm.managers m ON m.manager_id = d.manager_id
LEFT JOIN crm.departments dep ON dep.department_id = m.department_id
LEFT JOIN crm.sources src ON src.source_id = d.source_id
LEFT JOIN crm.loss_reasons lr ON lr.loss_reason_id = d.loss_reason_id
LEFT JOIN kpi.closed_deals cd ON cd.deal_id = d.deal_id
LEFT JOIN deal_touches dt ON dt.deal_id = d.deal_id
LEFT JOIN open_tasks ot ON ot.deal_id = d.deal_id
LEFT JOIN overdue_activities oa ON oa.deal_id = d.deal_id
