"""A Telegram Bot API emulator with Telegram's checks, limits and injected faults.

`herald emulator` runs it standalone; `herald.emulator.testing.run_emulator` runs it inside
a test's event loop; `herald.emulator.remote.RemoteEmulator` drives one in another process;
`herald.emulator.pytest_plugin` provides the `telegram_emulator` fixture. See docs/emulator.md.
"""
