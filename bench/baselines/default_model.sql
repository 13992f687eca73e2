-- The default model's signals (models/default.toml), hand-written over the raw events and the
-- identity tables, as an analyst would write them in DuckDB: one pass, no rollups, no temp
-- tables. The harness replaces AS_OF with the scoring moment. Identity follows upmarket's
-- documented rules (ARCHITECTURE.md): person through aliases; workspace = the event's group,
-- else the membership the person had at that time, else the person's first workspace.
WITH ev AS (
    SELECT e.timestamp AS ts, e.type, e.event,
           coalesce(json_extract_string(e.properties, '$.path'), e.name) AS path,
           CASE WHEN e.type IN ('identify', 'group')
                THEN json_extract_string(e.traits, '$."company_size"') END AS company_size,
           e.group_id,
           coalesce(au.user_id, e.user_id, aa.user_id, e.anonymous_id) AS person
    FROM events e
    LEFT JOIN aliases au ON au.alias = e.user_id
    LEFT JOIN aliases aa ON aa.alias = e.anonymous_id
    WHERE e.timestamp < AS_OF
), members AS (
    SELECT coalesce(a.user_id, m.user_id) AS person, m.workspace_id, min(m.since) AS since
    FROM memberships m LEFT JOIN aliases a ON a.alias = m.user_id
    GROUP BY ALL
), first_ws AS (
    SELECT person, first(workspace_id ORDER BY since, workspace_id) AS workspace_id
    FROM members GROUP BY person
), placed AS (
    SELECT ev.*, coalesce(ev.group_id, m.workspace_id, f.workspace_id) AS account
    FROM ev
    ASOF LEFT JOIN members m ON ev.person = m.person AND ev.ts >= m.since
    LEFT JOIN first_ws f ON f.person = ev.person
), sizes AS (
    -- the most common company size declared, ties to the smallest (as upmarket and pandas do)
    SELECT account, first(company_size ORDER BY n DESC, company_size) AS company_size
    FROM (SELECT account, company_size, count(*) AS n FROM placed
          WHERE account IS NOT NULL AND company_size IS NOT NULL GROUP BY ALL)
    GROUP BY account
), signals AS (
    SELECT account,
        count(DISTINCT person) FILTER (WHERE ts >= AS_OF - INTERVAL 28 DAY) AS active_users,
        count(*) FILTER (WHERE ts >= AS_OF - INTERVAL 28 DAY AND type = 'track'
            AND event IN ('Report Created', 'Dashboard Viewed', 'Query Run', 'Chart Shared')) AS core_volume,
        count(DISTINCT person) FILTER (WHERE ts >= AS_OF - INTERVAL 7 DAY) AS recent_users,
        count(DISTINCT person) FILTER (WHERE ts >= AS_OF - INTERVAL 35 DAY AND ts < AS_OF - INTERVAL 7 DAY) AS base_users,
        count(DISTINCT event) FILTER (WHERE ts >= AS_OF - INTERVAL 28 DAY AND type = 'track'
            AND event IN ('Alert Configured', 'Integration Connected', 'API Key Created', 'Custom Metric Defined')) AS advanced_breadth,
        count(DISTINCT event) FILTER (WHERE ts >= AS_OF - INTERVAL 60 DAY AND type = 'track'
            AND event IN ('SSO Configured', 'Audit Log Viewed', 'SCIM Provisioning Enabled', 'Data Retention Changed')) AS enterprise_breadth,
        count(DISTINCT person) FILTER (WHERE ts >= AS_OF - INTERVAL 30 DAY AND type IN ('page', 'screen') AND starts_with(path, '/legal/terms')) AS legal_viewers,
        count(DISTINCT person) FILTER (WHERE ts >= AS_OF - INTERVAL 30 DAY AND type IN ('page', 'screen') AND starts_with(path, '/legal/privacy')) AS privacy_viewers,
        count(DISTINCT person) FILTER (WHERE ts >= AS_OF - INTERVAL 30 DAY AND type IN ('page', 'screen') AND starts_with(path, '/pricing')) AS pricing_viewers,
        count(DISTINCT person) FILTER (WHERE ts >= AS_OF - INTERVAL 60 DAY AND type IN ('page', 'screen') AND starts_with(path, '/security')) AS security_viewers,
        count(*) FILTER (WHERE ts >= AS_OF - INTERVAL 60 DAY AND type = 'track' AND event = 'Admin Role Changed') AS admin_changes,
        count(*) FILTER (WHERE ts >= AS_OF - INTERVAL 14 DAY AND type = 'track' AND event = 'Teammate Invited') AS invites,
        date_diff('day', max(ts), AS_OF) AS recency
    FROM placed WHERE account IS NOT NULL
    GROUP BY account
)
SELECT account, active_users, core_volume,
    CASE WHEN base_users = 0 THEN CASE WHEN recent_users > 0 THEN 100.0 ELSE 0.0 END
         ELSE (recent_users::DOUBLE / base_users - 1.0) * 100.0 END AS user_velocity,
    advanced_breadth, enterprise_breadth, legal_viewers, privacy_viewers, pricing_viewers,
    security_viewers, admin_changes, invites, sizes.company_size, recency
FROM signals LEFT JOIN sizes USING (account) ORDER BY account
