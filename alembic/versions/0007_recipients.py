"""recipients: Telegram's updates, chat states, recipients and their deep links

- `telegram_updates`: every update once, by (bot_id, update_id), as JSONB.
- `telegram_offsets`: `herald poll`'s getUpdates offset per bot.
- `chats`: blocked chats and migrated groups, per bot.
- `recipients`, `recipient_links`: (client, external_id) bound to a chat by a one-time
  `t.me/<bot>?start=<code>` link.
- `tasks.recipient`: the external_id a task named instead of a chat_id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")


def _ts(name: str, nullable: bool = False, default: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=_NOW if default else None,
    )


def upgrade() -> None:
    op.add_column("tasks", sa.Column("recipient", sa.Text(), nullable=True))
    op.create_table(
        "telegram_updates",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=True),
        sa.Column("payload", JSONB(), nullable=False),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("id", name="pk_telegram_updates"),
        sa.UniqueConstraint("bot_id", "update_id", name="uq_telegram_updates_bot_id_update_id"),
    )
    op.create_index("ix_telegram_updates_chat_id_id", "telegram_updates", ["chat_id", "id"])
    op.create_table(
        "telegram_offsets",
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("bot_id", name="pk_telegram_offsets"),
    )
    op.create_table(
        "chats",
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("blocked", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("blocked_reason", sa.Text(), nullable=True),
        sa.Column("migrated_to", sa.Text(), nullable=True),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("bot_id", "chat_id", name="pk_chats"),
    )
    op.create_table(
        "recipients",
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("subscribed", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _ts("bound_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("bot_id", "client", "external_id", name="pk_recipients"),
    )
    op.create_index("ix_recipients_bot_id_chat_id", "recipients", ["bot_id", "chat_id"])
    op.create_table(
        "recipient_links",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("welcome", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("expires_at", default=False),
        _ts("used_at", nullable=True, default=False),
        sa.Column("used_by_chat", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("code", name="pk_recipient_links"),
    )


def downgrade() -> None:
    op.drop_table("recipient_links")
    op.drop_index("ix_recipients_bot_id_chat_id", table_name="recipients")
    op.drop_table("recipients")
    op.drop_table("chats")
    op.drop_table("telegram_offsets")
    op.drop_index("ix_telegram_updates_chat_id_id", table_name="telegram_updates")
    op.drop_table("telegram_updates")
    op.drop_column("tasks", "recipient")
