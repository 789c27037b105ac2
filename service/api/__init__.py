"""The REST routes (`jobs`, `health`), their bodies (`schemas`) and how they reach the services (`deps`)."""
