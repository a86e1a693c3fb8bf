"""Agent assist: suggested replies that fit the moment an agent holds a conversation.

facts.py     what the case database knows, as flat fact paths (case.id, shipment.promised...)
moment.py    the moment to answer: facts, the customer's last message, what was already said
library.py   the reply library (bot/settings/reply_library.yml) and filling its placeholders
learned.py   replies agents sent before, kept once, with their case's facts made placeholders
ranker.py    candidates from the policy, the library and learned replies, ranked, with the two "never" rules
telemetry.py what became of each suggestion shown: sent as is, sent edited, ignored
evaluate.py  `python -m bot evaluate --suggestions` on tests/suggestion_moments.yml
"""
