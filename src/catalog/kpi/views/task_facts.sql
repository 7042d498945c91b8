-- kpi.task_facts: one row per task, with the responsible manager and its state as of the
-- snapshot.
SELECT t.*,
       m.name AS manager_name,
       m.department_id,
       (t.status NOT IN ('completed', 'cancelled') AND coalesce(t.deadline < ${taken_at}, false)) AS is_overdue,
       coalesce(t.completed_at > t.deadline, false) AS completed_late,
       t.status = 'new' AS is_not_taken
FROM crm.tasks t
LEFT JOIN crm.managers m ON m.manager_id = t.manager_id
