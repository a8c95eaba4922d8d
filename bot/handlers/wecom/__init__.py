"""WeCom / 政务微信 adapter: leaders' self-built app, tier group chats and the smart bot."""
