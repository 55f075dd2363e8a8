from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from governance import models

        # Configuration history (who changed which field when) is kept by django-auditlog; the
        # approval evidence itself goes to the signed ledger, written explicitly by services.
        for model in (
            models.Team,
            models.Service,
            models.Environment,
            models.Target,
            models.RoleAssignment,
            models.Delegation,
            models.Vendor,
            models.IdentityGroup,
            models.GroupRoleMapping,
        ):
            auditlog.register(model)
        auditlog.register(models.ScimToken, exclude_fields=["key_hash", "last_used_at"])
        auditlog.register(models.Policy, exclude_fields=["updated_at"])

        from axes.signals import user_locked_out

        from governance.identity import lockouts

        # django-axes decides when a sign-in lockout begins; the receiver ledgers it.
        user_locked_out.connect(lockouts.on_user_locked_out, dispatch_uid="signoff-ledger-lockout")
