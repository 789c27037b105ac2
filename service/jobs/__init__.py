"""What runs jobs (`engine`): admission, the notification loop, and the record of every job it starts."""
