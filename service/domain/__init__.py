"""What a job is, below everything that stores or runs one: its spec, its record, its notifications, and the
`Sink` port through which they leave the engine. Nothing here imports another layer of the service."""
