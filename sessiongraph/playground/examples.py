"""Example operations: the playground's default tab, and the README's "Example queries"."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXAMPLES", "Example", "default_document"]


@dataclass(frozen=True)
class Example:
    comment: str
    query: str


EXAMPLES = (
    Example(
        "A season with every session and its meeting: two upstream requests, sent at once.",
        """query Season {
  meetings(filter: { year: { eq: 2023 } }) {
    meetingName
    sessions { sessionName startsAt meeting { meetingName } }
  }
}""",
    ),
    Example(
        "The latest meeting and session (OpenF1's `latest`).",
        """query Latest {
  meeting(latest: true) {
    meetingName location
    sessions(filter: { sessionName: { eq: "Race" } }) { dateStart }
  }
  f1Session(latest: true) { sessionName sessionType startsAt meeting { meetingName } }
}""",
    ),
    Example(
        "Filters combine with AND, across fields and operators.",
        """query RacesAndQualifying {
  f1Sessions(filter: {
    dateStart: { gte: "2023-05-01T00:00:00Z", lt: "2023-07-01T00:00:00Z" }
    sessionType: { in: ["Race", "Qualifying"] }
  }) { sessionKey sessionName countryName dateStart }
}""",
    ),
    Example(
        "One session by key; an alias (`monaco:`) names a second list.",
        """query ByKey {
  f1Session(key: 9140) { sessionName sessionType meeting { meetingOfficialName } }
  monaco: meetings(filter: { countryCode: { eq: "MON" } }) { year meetingKey }
}""",
    ),
    Example(
        "A race's own data: its grid (found under qualifying), results, drivers, stints and laps.",
        """query RaceData {
  f1Session(key: 9839) {
    sessionName meeting { meetingName }
    grid { position driverNumber }
    results { position driverNumber duration gapToLeader gapToLeaderText points }
    drivers { driverNumber nameAcronym teamName }
    stints { driverNumber stintNumber compound lapStart lapEnd }
    laps(driverNumber: 1) { lapNumber lapDuration }
  }
}""",
    ),
    Example(
        "Every source's sessions in a window, merged in start order; `after: endCursor` pages on.",
        """query Timeline {
  sessions(from: "2024-02-29T00:00:00Z", to: "2024-03-03T00:00:00Z", first: 10) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        __typename id name source startsAt endsAt
        ... on F1Session { meeting { meetingName } }
        ... on SqlRaceSession { connectionName lapsCount }
      }
    }
  }
}""",
    ),
    Example(
        "Any object by its global `id`; `nodes` loads many at once.",
        """query ByGlobalId {
  node(id: "TWVldGluZzoxMjE2") { id ... on Meeting { meetingName } }
  nodes(ids: ["RjFTZXNzaW9uOjkxNDA=", "Q29ubmVjdGlvbjpTaW11bGF0b3I="]) {
    __typename id
    ... on Session { name startsAt }
  }
}""",
    ),
)

_HEADER = """\
# sessiongraph: one GraphQL API over OpenF1, Guidebook and
# McLaren SQL Race sessions.
#
# The run button asks which operation to run; Ctrl-Enter runs
# the one under the cursor. The explorer (the folder icon on
# the left) builds a query as you tick fields.
"""


def default_document() -> str:
    """Every example as one commented document, for the playground's default tab."""
    parts = [_HEADER]
    parts.extend(f"# {example.comment}\n{example.query}\n" for example in EXAMPLES)
    return "\n".join(parts)
