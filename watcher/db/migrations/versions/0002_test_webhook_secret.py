"""merchant.test_webhook_secret_enc: test callbacks get their own secret

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 05:00:00.000000

Nullable: the key that encrypts webhook secrets is the daemon's, not the migration's, so
existing merchants are given one at the next start (watcher.merchants.ensure_test_secrets).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("merchant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("test_webhook_secret_enc", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("merchant", schema=None) as batch_op:
        batch_op.drop_column("test_webhook_secret_enc")
