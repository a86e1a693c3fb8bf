"""The gateway: Mend's only public port, between customers, agents, trainers and Rasa."""
