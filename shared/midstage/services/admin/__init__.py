"""The admin API's use cases, one service per resource: the routers (midstage.admin) authenticate
and parse, these decide, the stores persist. Every refusal is a MidstageError (midstage.errors)
with a documented code."""
