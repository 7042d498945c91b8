-- kpi.department_tree: every department with each of its sub-departments (itself included,
-- depth 0), for slicing by a department and everything under it:
--   WHERE department_id IN (SELECT department_id FROM kpi.department_tree WHERE ancestor_id = 'sales')
WITH RECURSIVE tree(ancestor_id, department_id, depth) AS (
    SELECT department_id AS ancestor_id, department_id, CAST(0 AS BIGINT) AS depth FROM crm.departments
    UNION ALL
    SELECT t.ancestor_id, d.department_id, t.depth + 1
    FROM tree t JOIN crm.departments d ON d.parent_id = t.department_id
    WHERE t.depth < 64 -- a cycle in parent_id stops here instead of looping
)
SELECT ancestor_id, department_id, depth FROM tree
