"""A simulated Exchange organisation for tests and demos: room calendars, EWS, push.

A test double at the network edge, never imported by production code. See docs/simulator.md.
"""

from pushsync.simulator.booking import BookingSettings, Room
from pushsync.simulator.clock import SimClock
from pushsync.simulator.config import SimulatorConfig, generated_rooms
from pushsync.simulator.items import Instance, Meeting, Person, Response
from pushsync.simulator.recurrence import Recurrence
from pushsync.simulator.server import SimulatorThread
from pushsync.simulator.simulator import Simulator

__all__ = [
    "BookingSettings",
    "Instance",
    "Meeting",
    "Person",
    "Recurrence",
    "Response",
    "Room",
    "SimClock",
    "Simulator",
    "SimulatorConfig",
    "SimulatorThread",
    "generated_rooms",
]
