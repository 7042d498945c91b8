-- kpi.plan_fact: each sales_plans row against the won revenue of its period and scope
-- (a manager; a department with its sub-departments, through each manager's current
-- department; or the whole company), with a working-time forecast for the current month.
WITH plans AS (
    SELECT row_number() OVER (ORDER BY period_start, department_id, manager_id) AS plan_no, *
    FROM crm.sales_plans
),
won AS (
    SELECT manager_id, department_id, closed_day AS d, amount_base
    FROM kpi.closed_deals
    WHERE status = 'won'
),
scoped AS (
    -- A manager's plan.
    SELECT p.plan_no, w.amount_base
    FROM plans p JOIN won w ON w.manager_id = p.manager_id AND w.d BETWEEN p.period_start AND p.period_end
    WHERE p.manager_id IS NOT NULL
    UNION ALL
    -- A department's plan: the department and its sub-departments.
    SELECT p.plan_no, w.amount_base
    FROM plans p
    JOIN kpi.department_tree t ON t.ancestor_id = p.department_id
    JOIN won w ON w.department_id = t.department_id AND w.d BETWEEN p.period_start AND p.period_end
    WHERE p.manager_id IS NULL
    UNION ALL
    -- The company's plan.
    SELECT p.plan_no, w.amount_base
    FROM plans p JOIN won w ON w.d BETWEEN p.period_start AND p.period_end
    WHERE p.manager_id IS NULL AND p.department_id IS NULL
),
facts AS (
    SELECT p.plan_no, coalesce(sum(s.amount_base), 0) AS amount_fact
    FROM plans p LEFT JOIN scoped s ON s.plan_no = p.plan_no
    GROUP BY p.plan_no
),
now AS (
    SELECT CAST(date_trunc('month', CAST(local_date(${taken_at}, ${tz}) AS TIMESTAMP)) AS DATE) AS current_month
),
shaped AS (
    SELECT CAST(date_trunc('month', CAST(p.period_start AS TIMESTAMP)) AS DATE) AS month,
           p.department_id, p.manager_id, p.amount_plan, f.amount_fact
    FROM plans p JOIN facts f ON f.plan_no = p.plan_no
)
SELECT s.month, s.department_id, s.manager_id, s.amount_plan, s.amount_fact,
       CAST(s.amount_fact AS DOUBLE) / NULLIF(CAST(s.amount_plan AS DOUBLE), 0) AS completion,
       CASE
           WHEN s.month < n.current_month THEN CAST(s.amount_fact AS DOUBLE)
           WHEN s.month = n.current_month THEN
               CAST(s.amount_fact AS DOUBLE)
               * CAST(working_seconds(local_start(s.month, ${tz}),
                                      local_start(CAST(s.month + INTERVAL '1 month' AS DATE), ${tz}), ${calendar}) AS DOUBLE)
               / NULLIF(CAST(working_seconds(local_start(s.month, ${tz}), ${taken_at}, ${calendar}) AS DOUBLE), 0)
       END AS forecast
FROM shaped s CROSS JOIN now n
