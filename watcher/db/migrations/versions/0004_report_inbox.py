"""payment_report as an inbox: a webhook is stored (result `received`) and answered before
it is applied, so a failure while applying it never loses it; what applying needs later (the
amount paid, in which currency, the provider's id of the money movement) is stored with it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payment_report", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("payment_ref", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.add_column(sa.Column("paid_micro", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("paid_currency", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True)
        )
        batch_op.create_index("ix_payment_report_result", ["result", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payment_report", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_report_result")
        batch_op.drop_column("paid_currency")
        batch_op.drop_column("paid_micro")
        batch_op.drop_column("payment_ref")
