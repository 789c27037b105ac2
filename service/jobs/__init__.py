"""Jobs: what may be asked for and what is kept (`models`), where notifications go (`sinks`),
and what runs them (`engine`)."""
