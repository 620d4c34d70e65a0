"""Software stack: command line, compiler, assembler, instruction-level simulator, driver."""
