from chassis.migrations import run_env
from services.monitoring.models import Base

run_env(Base.metadata)
