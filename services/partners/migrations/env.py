from chassis.migrations import run_env
from services.partners.models import Base

run_env(Base.metadata)
