"""The faust agents of the agent role, each a class that holds its state explicitly;
``pipeline/app.py`` wires them to their topics."""
