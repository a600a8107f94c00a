from chassis.migrations import run_env
from services.referral.models import Base

run_env(Base.metadata)
