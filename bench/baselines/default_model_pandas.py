"""The default model's signals in pandas, as an analyst would write them: load the events and the
identity tables, attribute each event to a person and a workspace, then group by workspace.

Input: a folder of Parquet files exported by the harness (events with the columns the model
needs already extracted from JSON; aliases; memberships). Output: CSV on stdout, one row per
workspace, same columns as default_model.sql. Timings and peak memory go to stderr as JSON.

Usage: python default_model_pandas.py DIR AS_OF   (AS_OF like 2026-10-31 00:00:00)
"""
import json
import resource
import sys
import time

import pandas as pd

CORE = ["Report Created", "Dashboard Viewed", "Query Run", "Chart Shared"]
ADVANCED = ["Alert Configured", "Integration Connected", "API Key Created", "Custom Metric Defined"]
ENTERPRISE = ["SSO Configured", "Audit Log Viewed", "SCIM Provisioning Enabled", "Data Retention Changed"]


def main(folder, as_of_text):
    started = time.perf_counter()
    ev = pd.read_parquet(f"{folder}/events.parquet")
    aliases = pd.read_parquet(f"{folder}/aliases.parquet")
    members = pd.read_parquet(f"{folder}/memberships.parquet")
    loaded = time.perf_counter()

    as_of = pd.Timestamp(as_of_text)
    ev = ev[ev["ts"] < as_of]
    alias_of = dict(zip(aliases["alias"], aliases["user_id"]))

    # Person: the user id (through aliases), else the anonymous id (through aliases).
    person = ev["user_id"].map(alias_of).fillna(ev["user_id"])
    person = person.fillna(ev["anonymous_id"].map(alias_of)).fillna(ev["anonymous_id"])
    ev = ev.assign(person=person)

    # Memberships by person; the first workspace of each person.
    members = members.assign(person=members["user_id"].map(alias_of).fillna(members["user_id"]))
    members = members.groupby(["person", "workspace_id"], as_index=False)["since"].min()
    first_ws = (
        members.sort_values(["since", "workspace_id"]).groupby("person")["workspace_id"].first()
    )

    # Workspace: the event's group, else the membership held at the time, else the first one.
    ev = ev.sort_values("ts")
    placed = pd.merge_asof(
        ev,
        members.sort_values("since").rename(columns={"workspace_id": "ws_asof"}),
        left_on="ts",
        right_on="since",
        by="person",
        direction="backward",
    )
    account = placed["group_id"].fillna(placed["ws_asof"]).fillna(placed["person"].map(first_ws))
    placed = placed.assign(account=account).dropna(subset=["account"])

    def since(days):
        return placed["ts"] >= as_of - pd.Timedelta(days=days)

    track = placed["type"] == "track"
    page = placed["type"].isin(["page", "screen"])
    path = placed["path"].fillna("")
    g = placed.groupby("account")

    def distinct(mask, col):
        return placed[mask].groupby("account")[col].nunique()

    def count(mask):
        return placed[mask].groupby("account").size()

    out = pd.DataFrame(index=g.size().index)
    out["active_users"] = distinct(since(28), "person")
    out["core_volume"] = count(since(28) & track & placed["event"].isin(CORE))
    recent = distinct(since(7), "person").reindex(out.index).fillna(0)
    base = distinct(since(35) & ~since(7), "person").reindex(out.index).fillna(0)
    velocity = (recent / base.where(base > 0) - 1.0) * 100.0
    out["user_velocity"] = velocity.fillna((recent > 0) * 100.0)
    out["advanced_breadth"] = distinct(since(28) & track & placed["event"].isin(ADVANCED), "event")
    out["enterprise_breadth"] = distinct(since(60) & track & placed["event"].isin(ENTERPRISE), "event")
    out["legal_viewers"] = distinct(since(30) & page & path.str.startswith("/legal/terms"), "person")
    out["privacy_viewers"] = distinct(since(30) & page & path.str.startswith("/legal/privacy"), "person")
    out["pricing_viewers"] = distinct(since(30) & page & path.str.startswith("/pricing"), "person")
    out["security_viewers"] = distinct(since(60) & page & path.str.startswith("/security"), "person")
    out["admin_changes"] = count(since(60) & track & (placed["event"] == "Admin Role Changed"))
    out["invites"] = count(since(14) & track & (placed["event"] == "Teammate Invited"))
    sizes = placed.dropna(subset=["company_size"])
    out["company_size"] = sizes.groupby("account")["company_size"].agg(lambda s: s.mode().iloc[0])
    out["recency"] = (as_of.normalize() - g["ts"].max().dt.normalize()).dt.days
    counts = [c for c in out.columns if c not in ("company_size", "user_velocity")]
    out[counts] = out[counts].fillna(0).astype("int64")
    done = time.perf_counter()

    out.sort_index().to_csv(sys.stdout, index_label="account")
    print(
        json.dumps(
            {
                "load_s": loaded - started,
                "compute_s": done - loaded,
                "accounts": len(out),
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        ),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
