"""`trygg demo`: the gateway with simulated HL7 and ASTM analysers and a simulated LIS, live.

Each run starts on a fresh demo database so the closing summary reconciles exactly what this
run's simulators had acknowledged against what the gateway holds ("lost" must be 0).

One module per job: ``plan`` (which simulator drives which instrument, over what, and the
config the gateway runs), ``runner`` (starting and stopping it all), ``view`` (the live
screen), ``reconcile`` (the ``lost`` count), ``summary`` (the closing summary and its JSON),
``words`` (the screen's texts). Only this package and ``trygg simulate`` import ``simulators``.
"""

from gateway.demo.options import DEMO_CONFIG, DemoOptions
from gateway.demo.plan import AstmDemoSim, DemoPlan, plan_demo
from gateway.demo.reconcile import reconcile
from gateway.demo.runner import run_demo, run_plan
from gateway.demo.summary import summary_dict

__all__ = [
    "DEMO_CONFIG",
    "AstmDemoSim",
    "DemoOptions",
    "DemoPlan",
    "plan_demo",
    "reconcile",
    "run_demo",
    "run_plan",
    "summary_dict",
]
