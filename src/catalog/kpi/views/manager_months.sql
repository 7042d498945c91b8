-- kpi.manager_months: the (local month, manager) pairs in which the manager created or
-- closed a deal, was given a lead or had a call: the rows of manager_scorecard and salary.
SELECT CAST(date_trunc('month', CAST(local_date(created_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month, manager_id
FROM crm.deals WHERE manager_id IS NOT NULL
UNION
SELECT CAST(date_trunc('month', CAST(local_date(closed_at, ${tz}) AS TIMESTAMP)) AS DATE), manager_id
FROM crm.deals WHERE manager_id IS NOT NULL AND closed_at IS NOT NULL
UNION
SELECT CAST(date_trunc('month', CAST(local_date(created_at, ${tz}) AS TIMESTAMP)) AS DATE), manager_id
FROM crm.leads WHERE manager_id IS NOT NULL
UNION
SELECT CAST(date_trunc('month', CAST(local_date(started_at, ${tz}) AS TIMESTAMP)) AS DATE), manager_id
FROM crm.calls WHERE manager_id IS NOT NULL
