"""Send a small, known story through an official analytics SDK to a running upmarket.

Usage: python send_events.py {segment|rudder|posthog} HOST WRITE_KEY

Prints, as JSON on stdout, what upmarket must have stored: one entry per event with its
message id and the person, workspace and company it must be attributed to. Exits non-zero if
the SDK reported any delivery error.
"""

import json
import sys
import uuid
from datetime import datetime, timedelta, timezone

sdk, host, write_key = sys.argv[1], sys.argv[2], sys.argv[3]
errors = []


def on_error(error, items=None):
    errors.append(repr(error))


p = sdk  # prefix that keeps ids of different SDK runs apart
acme = f"{p}-acme.com"
ws = f"{p}-ws-acme"
alice, bob, carl = f"{p}-alice", f"{p}-bob", f"{p}-carl"
anon, mobile = f"{p}-anon-1", f"{p}-mobile-1"
t0 = datetime.now(timezone.utc) - timedelta(hours=2)
expected = []
step = 0


def at():
    global step
    step += 1
    return t0 + timedelta(minutes=step)


def mid(name):
    # PostHog requires UUIDs; the others take any string.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"upmarket-test/{p}/{name}"))


def expect(name, person, workspace, company):
    expected.append({"message_id": mid(name), "person": person, "workspace": workspace, "company": company})


if sdk in ("segment", "rudder"):
    if sdk == "segment":
        from segment.analytics.client import Client
    else:
        from rudderstack.analytics.client import Client
    # RudderStack's SDK gzips by default; Segment's is told to, so both paths are exercised.
    c = Client(write_key=write_key, host=host, on_error=on_error, gzip=True, max_retries=2)

    c.page(anonymous_id=anon, name="Pricing", properties={"path": "/pricing"}, timestamp=at(), message_id=mid("pricing"))
    expect("pricing", alice, ws, acme)
    c.identify(user_id=alice, anonymous_id=anon, traits={"email": f"alice@{acme}", "title": "VP Engineering"}, timestamp=at(), message_id=mid("identify-alice"))
    expect("identify-alice", alice, ws, acme)
    c.group(user_id=alice, group_id=ws, traits={"name": "Acme", "plan": "free"}, timestamp=at(), message_id=mid("group-alice"))
    expect("group-alice", alice, ws, acme)
    c.track(user_id=alice, event="Report Created", properties={"size": 3}, timestamp=at(), message_id=mid("report"))
    expect("report", alice, ws, acme)
    c.page(user_id=alice, name="Terms", properties={"path": "/legal/terms"}, context={"groupId": ws}, timestamp=at(), message_id=mid("terms"))
    expect("terms", alice, ws, acme)
    c.identify(user_id=bob, traits={"email": "bob@gmail.com"}, timestamp=at(), message_id=mid("identify-bob"))
    expect("identify-bob", bob, ws, acme)
    c.group(user_id=bob, group_id=ws, timestamp=at(), message_id=mid("group-bob"))
    expect("group-bob", bob, ws, acme)
    c.identify(user_id=carl, traits={"email": "carl@gmail.com"}, timestamp=at(), message_id=mid("identify-carl"))
    expect("identify-carl", carl, None, None)
    c.track(user_id=carl, event="Report Created", timestamp=at(), message_id=mid("carl-report"))
    expect("carl-report", carl, None, None)
    c.track(anonymous_id=mobile, event="App Opened", timestamp=at(), message_id=mid("mobile"))
    expect("mobile", alice, ws, acme)
    c.alias(previous_id=mobile, user_id=alice, timestamp=at(), message_id=mid("alias"))
    expect("alias", alice, ws, acme)
    c.flush()
    c.join()
else:
    from posthog import Posthog

    c = Posthog(write_key, host=host, on_error=on_error, gzip=True, max_retries=2, disable_geoip=True)
    groups = {"company": ws}
    c.capture("$pageview", distinct_id=anon, properties={"$current_url": "https://app.example.com/pricing"}, timestamp=at(), uuid=mid("pricing"))
    expect("pricing", alice, ws, acme)
    c.capture("$identify", distinct_id=alice, properties={"$anon_distinct_id": anon, "$set": {"email": f"alice@{acme}"}}, timestamp=at(), uuid=mid("identify-alice"))
    expect("identify-alice", alice, ws, acme)
    c.group_identify("company", ws, {"name": "Acme"}, timestamp=at(), uuid=mid("group-set"))
    c.capture("Report Created", distinct_id=alice, groups=groups, timestamp=at(), uuid=mid("report"))
    expect("report", alice, ws, acme)
    c.capture("$pageview", distinct_id=alice, properties={"$current_url": "https://app.example.com/legal/terms"}, timestamp=at(), uuid=mid("terms"))
    expect("terms", alice, ws, acme)
    c.set(distinct_id=bob, properties={"email": "bob@gmail.com"}, timestamp=at(), uuid=mid("identify-bob"))
    expect("identify-bob", bob, ws, acme)
    c.capture("Dashboard Viewed", distinct_id=bob, groups=groups, timestamp=at(), uuid=mid("bob-view"))
    expect("bob-view", bob, ws, acme)
    c.set(distinct_id=carl, properties={"email": "carl@gmail.com"}, timestamp=at(), uuid=mid("identify-carl"))
    expect("identify-carl", carl, None, None)
    c.capture("Report Created", distinct_id=carl, timestamp=at(), uuid=mid("carl-report"))
    expect("carl-report", carl, None, None)
    c.capture("App Opened", distinct_id=mobile, timestamp=at(), uuid=mid("mobile"))
    expect("mobile", alice, ws, acme)
    c.alias(previous_id=mobile, distinct_id=alice, timestamp=at(), uuid=mid("alias"))
    expect("alias", alice, ws, acme)
    c.flush()
    c.shutdown()

if errors:
    print(json.dumps({"errors": errors}), file=sys.stderr)
    sys.exit(1)
print(json.dumps(expected))
