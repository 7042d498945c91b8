-- kpi.manager_scorecard: per local month and manager: sales, open pipeline (as of the
-- snapshot, repeated in every month), cycle, response, calls, leads, rank and salary.
-- One row per (month, manager) in which the manager created or closed a deal, was given a
-- lead or had a call.
WITH deals_created AS (
    SELECT CAST(date_trunc('month', CAST(local_date(created_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month, manager_id,
           response_minutes
    FROM kpi.deal_facts WHERE manager_id IS NOT NULL
),
deals_closed AS (
    SELECT closed_month AS month, manager_id, status, amount_base, cycle_days
    FROM kpi.closed_deals WHERE manager_id IS NOT NULL
),
leads AS (
    SELECT CAST(date_trunc('month', CAST(local_date(created_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month, manager_id,
           is_qualified, response_minutes
    FROM kpi.lead_facts WHERE manager_id IS NOT NULL
),
calls AS (
    SELECT CAST(date_trunc('month', CAST(local_date(started_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month, manager_id,
           coalesce(is_successful_call(duration_seconds, ${calls.success_threshold_seconds}, status = 'answered'), false) AS is_successful,
           (direction = 'inbound' AND status <> 'answered') AS is_missed, duration_seconds
    FROM crm.calls WHERE manager_id IS NOT NULL
),
sales AS (
    SELECT month, manager_id,
           coalesce(sum(CASE WHEN status = 'won' THEN amount_base END), 0) AS revenue,
           count(CASE WHEN status = 'won' THEN 1 END) AS deals_won,
           avg(CASE WHEN status = 'won' THEN cycle_days END) AS avg_cycle_days
    FROM deals_closed GROUP BY month, manager_id
),
responses AS (
    SELECT month, manager_id, avg(response_minutes) AS avg_response_minutes
    FROM (SELECT month, manager_id, response_minutes FROM deals_created
          UNION ALL SELECT month, manager_id, response_minutes FROM leads) r
    GROUP BY month, manager_id
),
lead_counts AS (
    SELECT month, manager_id, count(*) AS leads, count(CASE WHEN is_qualified THEN 1 END) AS qualified_leads
    FROM leads GROUP BY month, manager_id
),
call_counts AS (
    SELECT month, manager_id,
           count(*) AS calls_total,
           count(CASE WHEN is_successful THEN 1 END) AS calls_successful,
           coalesce(sum(CASE WHEN is_successful THEN duration_seconds END), 0) / 60.0 AS successful_talk_minutes,
           count(CASE WHEN is_missed THEN 1 END) AS calls_missed
    FROM calls GROUP BY month, manager_id
),
open_now AS (
    SELECT manager_id, count(*) AS open_deals, coalesce(sum(amount_base), 0) AS potential_amount
    FROM crm.deals WHERE status = 'open' AND manager_id IS NOT NULL GROUP BY manager_id
),
rows AS (
    SELECT k.month, k.manager_id, m.name AS manager_name, m.department_id,
           coalesce(s.revenue, 0) AS revenue,
           coalesce(s.deals_won, 0) AS deals_won,
           coalesce(o.open_deals, 0) AS open_deals,
           coalesce(o.potential_amount, 0) AS potential_amount,
           s.avg_cycle_days,
           r.avg_response_minutes,
           coalesce(c.calls_total, 0) AS calls_total,
           coalesce(c.calls_successful, 0) AS calls_successful,
           coalesce(c.successful_talk_minutes, 0) AS successful_talk_minutes,
           coalesce(c.calls_missed, 0) AS calls_missed,
           coalesce(l.leads, 0) AS leads,
           coalesce(l.qualified_leads, 0) AS qualified_leads
    FROM kpi.manager_months k
    LEFT JOIN crm.managers m ON m.manager_id = k.manager_id
    LEFT JOIN sales s ON s.month = k.month AND s.manager_id = k.manager_id
    LEFT JOIN responses r ON r.month = k.month AND r.manager_id = k.manager_id
    LEFT JOIN lead_counts l ON l.month = k.month AND l.manager_id = k.manager_id
    LEFT JOIN call_counts c ON c.month = k.month AND c.manager_id = k.manager_id
    LEFT JOIN open_now o ON o.manager_id = k.manager_id
)
SELECT r.month, r.manager_id, r.manager_name, r.department_id, r.revenue, r.deals_won,
       r.revenue / CAST(NULLIF(r.deals_won, 0) AS DECIMAL(20, 0)) AS avg_check,
       r.open_deals, r.potential_amount, r.avg_cycle_days, r.avg_response_minutes,
       r.calls_total, r.calls_successful, r.successful_talk_minutes, r.calls_missed,
       r.leads, r.qualified_leads,
       CAST(r.qualified_leads AS DOUBLE) / NULLIF(CAST(r.calls_successful AS DOUBLE), 0) AS qualified_per_successful_call,
       CAST(row_number() OVER (PARTITION BY r.month ORDER BY r.revenue DESC, r.deals_won DESC, r.manager_id) AS BIGINT) AS revenue_rank,
       sal.total AS salary
FROM rows r
LEFT JOIN kpi.salary sal ON sal.month = r.month AND sal.manager_id = r.manager_id
