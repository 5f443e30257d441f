"""Config defaults every experiment starts from, and pieces experiments share."""
