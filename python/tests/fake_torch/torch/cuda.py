log = []
_initialized = False
# Events complete only when the test says so (or on synchronize), to drive deferred releases.
pending_events = []


def is_available():
    return True


def is_initialized():
    return _initialized


class _Cudart:
    def cudaHostRegister(self, ptr, size, flags):
        log.append(("register", ptr, size, flags))
        return 0

    def cudaHostUnregister(self, ptr):
        log.append(("unregister", ptr))
        return 0


def cudart():
    global _initialized
    _initialized = True
    return _Cudart()


class Event:
    def __init__(self):
        self.done = False

    def record(self):
        pending_events.append(self)
        log.append(("record",))

    def query(self):
        return self.done

    def synchronize(self):
        log.append(("synchronize",))
        self.done = True


def complete_all():
    for e in pending_events:
        e.done = True
    pending_events.clear()
