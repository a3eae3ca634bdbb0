"""The one error type the converter raises for problems a user can fix; the CLI prints it as one line."""


class ConversionError(Exception):
    pass
