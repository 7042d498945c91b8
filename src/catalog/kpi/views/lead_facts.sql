-- kpi.lead_facts: one row per lead, with source, manager, qualification, first contact,
-- response time in working minutes and the first-response SLA.
WITH touches AS (
    SELECT lead_id, started_at AS at FROM crm.calls
    WHERE lead_id IS NOT NULL AND (direction = 'outbound' OR status = 'answered')
    UNION ALL
    SELECT lead_id, created_at FROM crm.activities
    WHERE lead_id IS NOT NULL AND kind <> 'task' AND (direction IS NULL OR direction = 'outbound')
),
first_contacts AS (
    SELECT l.lead_id, min(t.at) AS first_contact_at
    FROM crm.leads l JOIN touches t ON t.lead_id = l.lead_id AND t.at >= l.created_at
    GROUP BY l.lead_id
),
base AS (
    SELECT l.*,
           src.name AS source_name,
           src.channel,
           src.is_online,
           m.name AS manager_name,
           m.department_id,
           l.status IN ('qualified', 'converted') AS is_qualified,
           fc.first_contact_at,
           working_seconds(l.created_at, fc.first_contact_at, ${calendar}, l.manager_id) / 60.0 AS response_minutes,
           CASE WHEN fc.first_contact_at IS NULL
                THEN working_seconds(l.created_at, ${taken_at}, ${calendar}, l.manager_id) / 60.0 END AS untaken_minutes
    FROM crm.leads l
    LEFT JOIN crm.sources src ON src.source_id = l.source_id
    LEFT JOIN crm.managers m ON m.manager_id = l.manager_id
    LEFT JOIN first_contacts fc ON fc.lead_id = l.lead_id
)
SELECT lead_id, title, status, status_native, source_id, manager_id, contact_id, company_id, amount, currency,
       created_at, updated_at, qualified_at, closed_at, converted_deal_id, custom_fields,
       source_name, channel, is_online, manager_name, department_id, is_qualified, first_contact_at, response_minutes,
       response_minutes <= ${sla.first_response_minutes} AS taken_in_time,
       coalesce(untaken_minutes > ${sla.first_response_minutes}, false) AS is_overdue_untaken
FROM base
