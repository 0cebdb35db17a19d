"""The OpenClaw skill shipped inside the wheel; `cellcall openclaw install-skill` copies SKILL.md from here."""
