"""The embedded simulated OpenAI-compatible server: the demo's default target and the tests' server.

Import from its modules (``llmsurge.sim.server``, ``llmsurge.sim.process``): this package stays empty so that
starting the server (``sim.process``) does not import it in the parent."""
