"""Mend's custom actions. Imported by the action server, this first locks the server down to Rasa.

See ``bot.action_server``: the shared token on every call, loopback by default, no start without a token.
"""
from bot.action_server import guard_running_action_server

guard_running_action_server()
