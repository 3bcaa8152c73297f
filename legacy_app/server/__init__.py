"""Serving the app: `legacy-app serve`, its connections and header timeout; a server in a child process."""
