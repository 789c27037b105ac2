"""Several replicas on one machine: the processes `mcp-notification-service cluster` starts and watches."""
