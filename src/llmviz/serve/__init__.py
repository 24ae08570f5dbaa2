"""How the views reach a user: the HTTP server, the static export, the notebook widget and the command line."""
