"""The server skeleton the agent and the registry share.

Each service passes only what differs (its application, its readiness, its metrics):

- `listener.bind_listener`: the socket, bound before start-up, so a taken port is a clear error;
- `server.ServiceServer`: uvicorn's server with drain-first shutdown on SIGTERM/SIGINT;
- `tls`: TLS on the listener from one combined PEM, reloaded when it changes, and the
  context clients verify a service with (`client_context`);
- `systemd`: READY=1, STATUS=, STOPPING=1 and the watchdog, sent from the serving loop;
- `bearer.BearerCheck`: `Authorization: Bearer <token>`, compared in constant time;
- `middleware.RequestMetrics`: request ids and the HTTP request metrics.
"""
