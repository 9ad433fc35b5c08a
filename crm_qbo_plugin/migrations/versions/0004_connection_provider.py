"""The accounting system on the connection (and on a pending connect, with Xero's PKCE verifier),
and ids wide enough for Xero's (36-character UUIDs).

Existing connections are QuickBooks ones (the server default fills them), so the migration runs on
a live database; widening a VARCHAR keeps every stored value.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

OLD, NEW = 32, 64
# (table, column, nullable) of every column that holds a books company or record id
WIDENED = (
    ('qbo_connection', 'realm_id', True),
    ('qbo_connection', 'pinned_realm_id', True),
    ('qbo_link', 'qbo_id', True),
    ('qbo_inbox', 'realm_id', False),
    ('qbo_inbox', 'entity_id', False),
    ('qbo_write_ledger', 'realm_id', False),
    ('qbo_write_ledger', 'entity_id', False),
)


def _resize(old: int, new: int) -> None:
    for table in dict.fromkeys(t for t, _c, _n in WIDENED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _t, column, nullable in (w for w in WIDENED if w[0] == table):
                batch_op.alter_column(column, existing_type=sqlmodel.sql.sqltypes.AutoString(length=old),
                                      type_=sqlmodel.sql.sqltypes.AutoString(length=new),
                                      existing_nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table('qbo_connection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                      server_default='quickbooks'))
    with op.batch_alter_table('qbo_oauth_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                      server_default='quickbooks'))
        batch_op.add_column(sa.Column('code_verifier_enc', sa.Text(), nullable=True))
    _resize(OLD, NEW)


def downgrade() -> None:
    _resize(NEW, OLD)
    with op.batch_alter_table('qbo_oauth_state', schema=None) as batch_op:
        batch_op.drop_column('code_verifier_enc')
        batch_op.drop_column('provider')
    with op.batch_alter_table('qbo_connection', schema=None) as batch_op:
        batch_op.drop_column('provider')
