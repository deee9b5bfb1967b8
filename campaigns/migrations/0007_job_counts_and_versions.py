"""Job counts per status and the versions of the job list and of each job, kept by triggers on PostgreSQL (see
``campaigns.models.JobCount``, ``JobListVersion`` and ``JobVersion``)."""

import uuid

from django.db import migrations, models

TRIGGERS = """
CREATE FUNCTION campaigns_jobcount_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO campaigns_jobcount (status, delta) VALUES (NEW.status, 1);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO campaigns_jobcount (status, delta) VALUES (OLD.status, -1);
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO campaigns_jobcount (status, delta) VALUES (OLD.status, -1), (NEW.status, 1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER campaigns_jobcount_track AFTER INSERT OR DELETE OR UPDATE OF status ON campaigns_bookingjob
    FOR EACH ROW EXECUTE FUNCTION campaigns_jobcount_track();
CREATE FUNCTION campaigns_jobcount_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM campaigns_jobcount;
    RETURN NULL;
END $$;
CREATE TRIGGER campaigns_jobcount_truncate AFTER TRUNCATE ON campaigns_bookingjob
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_jobcount_truncate();
LOCK TABLE campaigns_bookingjob IN SHARE MODE;
INSERT INTO campaigns_jobcount (status, delta) SELECT status, COUNT(*) FROM campaigns_bookingjob GROUP BY status;
"""

# Statement-level triggers: one version row per statement (per job it wrote), from its transition tables: the
# rows written (``changed``) and, for an UPDATE, the rows as they were (``gone``), so a row moved from one job to
# another moves both. A TRUNCATE cannot say which jobs it removed: it moves every version on (a job_id NULL row
# counts for every job). Removing version rows (a TRUNCATE or DELETE of them, a fold) changes the epoch, which
# readers compare with the sums, so a version never comes back to a value seen before with other data behind it.
VERSION_TRIGGERS = """
CREATE FUNCTION campaigns_version_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        INSERT INTO campaigns_joblistversion (delta) VALUES (1);
        INSERT INTO campaigns_jobversion (job_id, delta) SELECT id, 1 FROM changed;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION campaigns_version_campaigns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        INSERT INTO campaigns_joblistversion (delta) VALUES (1);
        INSERT INTO campaigns_jobversion (job_id, delta)
            SELECT j.id, 1 FROM changed c JOIN campaigns_bookingjob j ON j.campaign_id = c.id;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION campaigns_version_job_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO campaigns_jobversion (job_id, delta)
            SELECT job_id, 1 FROM (SELECT job_id FROM changed UNION SELECT job_id FROM gone) AS jobs;
    ELSE
        INSERT INTO campaigns_jobversion (job_id, delta) SELECT DISTINCT job_id, 1 FROM changed;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION campaigns_version_rounds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO campaigns_jobversion (job_id, delta)
            SELECT DISTINCT r.job_id, 1
            FROM (SELECT recommendation_id FROM changed UNION SELECT recommendation_id FROM gone) AS c
            JOIN campaigns_recommendation r ON r.id = c.recommendation_id;
    ELSE
        INSERT INTO campaigns_jobversion (job_id, delta)
            SELECT DISTINCT r.job_id, 1 FROM changed c JOIN campaigns_recommendation r ON r.id = c.recommendation_id;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION campaigns_version_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaigns_joblistversion (delta) VALUES (1);
    INSERT INTO campaigns_jobversion (job_id, delta) VALUES (NULL, 1);
    RETURN NULL;
END $$;
CREATE FUNCTION campaigns_version_new_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM gone) THEN  -- a DELETE of no row removes nothing
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO campaigns_versionepoch (id, epoch) VALUES (1, gen_random_uuid())
        ON CONFLICT (id) DO UPDATE SET epoch = EXCLUDED.epoch;
    RETURN NULL;
END $$;
INSERT INTO campaigns_versionepoch (id, epoch) VALUES (1, gen_random_uuid());
"""

EPOCH_TRIGGERS = [  # removing version rows, by any means, starts a new epoch
    f"CREATE TRIGGER {table}_new_epoch_{event.lower()} AFTER {event} ON {table} "
    f"{'REFERENCING OLD TABLE AS gone ' if event == 'DELETE' else ''}"
    "FOR EACH STATEMENT EXECUTE FUNCTION campaigns_version_new_epoch();"
    for table in ("campaigns_joblistversion", "campaigns_jobversion", "campaigns_versionepoch")
    for event in ("DELETE", "TRUNCATE")
]

VERSIONED = [  # table, function, events
    ("campaigns_bookingjob", "campaigns_version_jobs", ("INSERT", "UPDATE", "DELETE")),
    ("campaigns_campaign", "campaigns_version_campaigns", ("UPDATE",)),
    ("campaigns_recommendation", "campaigns_version_job_rows", ("INSERT", "UPDATE", "DELETE")),
    ("campaigns_bookeddeal", "campaigns_version_job_rows", ("INSERT", "UPDATE", "DELETE")),
    ("campaigns_negotiationround", "campaigns_version_rounds", ("INSERT", "UPDATE", "DELETE")),
]


def _version_triggers() -> str:
    statements = [VERSION_TRIGGERS]
    for table, function, events in VERSIONED:
        for event in events:
            transition = {
                "INSERT": "NEW TABLE AS changed",
                "UPDATE": "OLD TABLE AS gone NEW TABLE AS changed",
                "DELETE": "OLD TABLE AS changed",
            }[event]
            statements.append(
                f"CREATE TRIGGER {table}_version_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION {function}();"
            )
        statements.append(
            f"CREATE TRIGGER {table}_version_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION campaigns_version_truncate();"
        )
    return "\n".join([*statements, *EPOCH_TRIGGERS])


def _drop_version_triggers() -> str:
    statements = [
        f"DROP TRIGGER IF EXISTS {table}_new_epoch_{event.lower()} ON {table};"
        for table in ("campaigns_joblistversion", "campaigns_jobversion", "campaigns_versionepoch")
        for event in ("DELETE", "TRUNCATE")
    ]
    for table, _function, events in VERSIONED:
        for event in (*events, "TRUNCATE"):
            statements.append(f"DROP TRIGGER IF EXISTS {table}_version_{event.lower()} ON {table};")
    for function in ("jobs", "campaigns", "job_rows", "rounds", "truncate", "new_epoch"):
        statements.append(f"DROP FUNCTION IF EXISTS campaigns_version_{function}();")
    return "\n".join(statements)


DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS campaigns_jobcount_truncate ON campaigns_bookingjob;
DROP TRIGGER IF EXISTS campaigns_jobcount_track ON campaigns_bookingjob;
DROP FUNCTION IF EXISTS campaigns_jobcount_truncate();
DROP FUNCTION IF EXISTS campaigns_jobcount_track();
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0006_publisher_domain_dashboard_order_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="JobCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("status", models.CharField(db_index=True, max_length=24)),
                ("delta", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="JobListVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("delta", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="JobVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("job_id", models.UUIDField(db_index=True, help_text="None: every job (after a TRUNCATE).", null=True)),
                ("delta", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="VersionEpoch",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("epoch", models.UUIDField(default=uuid.uuid4)),
            ],
        ),
        migrations.RunPython(_on_postgres(TRIGGERS), _on_postgres(DROP_TRIGGERS)),
        migrations.RunPython(_on_postgres(_version_triggers()), _on_postgres(_drop_version_triggers())),
    ]
