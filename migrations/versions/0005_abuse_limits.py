"""abuse limits: retention marks on images and jobs, indexes for quotas and retention

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_jobs_tenant_id_status", ["tenant_id", "status"], unique=False)
        batch_op.create_index("ix_jobs_status_completed_at", ["status", "completed_at"], unique=False)
        batch_op.create_index("ix_jobs_image_id", ["image_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_image_id")
        batch_op.drop_index("ix_jobs_status_completed_at")
        batch_op.drop_index("ix_jobs_tenant_id_status")
        batch_op.drop_column("purged_at")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
