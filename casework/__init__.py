"""The case workflow after intake: linkage units, assignment with deadlines in working days
on China's official calendar, the unit's side, urging, review and revisit, special reports,
statistics and the weekly publication.

Functions here take an asyncpg connection and, where time matters, `now` (an aware
datetime) so that a controlled clock can drive a case's whole life in tests. They import
from `db` (schema, encrypted store) and nothing from the desk or call control.
"""
