-- kpi.salary: per (month, manager) of kpi.manager_months: won revenue and the pay of the
-- compensation row in force on the 1st of the month (the manager's own, else the
-- department's, else the default; the latest effective_from among them).
WITH revenue AS (
    SELECT CAST(date_trunc('month', CAST(local_date(closed_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month, manager_id,
           sum(amount_base) AS revenue
    FROM crm.deals WHERE status = 'won' AND closed_at IS NOT NULL AND manager_id IS NOT NULL
    GROUP BY 1, 2
),
candidates AS (
    SELECT k.month, k.manager_id, c.base_salary, c.commission_rate,
           CASE WHEN c.manager_id IS NOT NULL THEN 1 WHEN c.department_id IS NOT NULL THEN 2 ELSE 3 END AS priority,
           c.effective_from
    FROM kpi.manager_months k
    LEFT JOIN crm.managers m ON m.manager_id = k.manager_id
    JOIN crm.compensation c
      ON c.effective_from <= k.month
     AND (c.manager_id = k.manager_id
          OR (c.manager_id IS NULL AND c.department_id = m.department_id)
          OR (c.manager_id IS NULL AND c.department_id IS NULL))
),
chosen AS (
    SELECT month, manager_id, base_salary, commission_rate,
           row_number() OVER (PARTITION BY month, manager_id ORDER BY priority, effective_from DESC) AS n
    FROM candidates
)
SELECT k.month, k.manager_id,
       coalesce(r.revenue, 0) AS revenue,
       c.base_salary,
       c.commission_rate,
       coalesce(r.revenue, 0) * c.commission_rate AS commission,
       c.base_salary + coalesce(r.revenue, 0) * c.commission_rate AS total
FROM kpi.manager_months k
LEFT JOIN revenue r ON r.month = k.month AND r.manager_id = k.manager_id
LEFT JOIN chosen c ON c.month = k.month AND c.manager_id = k.manager_id AND c.n = 1
