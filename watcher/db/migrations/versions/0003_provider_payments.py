"""card, bank and wallet payments: the adapter, its references, the paid amount, and the
reports providers send (stored before they are acknowledged, applied once)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("provider_name", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "provider_payment_ref",
                sqlmodel.sql.sqltypes.AutoString(length=200),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("paid_kurus", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("checked_ms", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_payment_provider_ref", ["provider_name", "provider_ref"], unique=False
        )
        batch_op.create_index(
            "ix_payment_provider_payment_ref",
            ["provider_name", "provider_payment_ref"],
            unique=False,
        )
    op.create_table(
        "payment_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("transaction_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("payment_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("result", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["payment_id"], ["payment.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "key", name="uq_report_source_key"),
    )
    with op.batch_alter_table("payment_report", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_report_payment_id"), ["payment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_report_payment_id"))
    op.drop_table("payment_report")
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_provider_payment_ref")
        batch_op.drop_index("ix_payment_provider_ref")
        batch_op.drop_column("checked_ms")
        batch_op.drop_column("paid_kurus")
        batch_op.drop_column("provider_payment_ref")
        batch_op.drop_column("provider_name")
