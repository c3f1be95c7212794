"""The simulator's Microsoft Graph face: subscriptions, events, calendarView delta, webhooks."""
