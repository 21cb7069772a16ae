"""Mail: templates, and delivery over SMTP or into a mailbox folder."""
