"""The dashboard in headless chromium against a whole embedded stack (see conftest)."""

from __future__ import annotations

import pytest
import requests

from chalicelib import dashboard
from tests.dashboard.conftest import Platform, run_scenario
from tests.polling import wait_for

pytestmark = pytest.mark.usefixtures("browser")


def test_a_wrong_token_shows_the_error_and_no_data(platform: Platform) -> None:
    measured = run_scenario(platform, "a_wrong_token_shows_the_error_and_no_data")
    assert measured["message"] == "unauthorized: a valid bearer token is required"


def test_sign_in_and_see_the_demo_app_and_its_url(platform: Platform) -> None:
    measured = run_scenario(platform, "sign_in_and_see_the_demo_app")
    assert measured["interactive_ms"] is not None
    # Every file of the dashboard, once, as it is stored: nothing else is fetched to show it.
    assert measured["dashboard_bytes"] == sum(
        len(file.body.encode()) for file in dashboard.files().values()
    )


def test_the_app_page_shows_releases_config_names_and_the_latest_events(
    platform: Platform,
) -> None:
    run_scenario(platform, "app_page_shows_releases_config_and_latest_events")


def test_a_refused_rollback_shows_the_api_error(platform: Platform) -> None:
    measured = run_scenario(platform, "a_failing_action_shows_the_api_error")
    assert measured["message"].startswith("conflict: hello-express has no earlier successful")


def test_a_new_log_line_appears_while_following(platform: Platform) -> None:
    run_scenario(platform, "a_new_log_line_appears_while_following")


def test_hostile_log_lines_and_commands_render_as_text(platform: Platform) -> None:
    run_scenario(platform, "hostile_values_render_as_text")


def test_a_developer_sees_only_its_own_apps(platform: Platform) -> None:
    run_scenario(platform, "a_developer_sees_only_its_own_apps")


def test_tokens_are_listed_without_secrets_and_revoked_from_the_page(
    platform: Platform,
) -> None:
    run_scenario(platform, "tokens_are_listed_without_secrets_and_revoked_after_a_confirmation")
    spare = {"Authorization": f"Bearer {platform.context['spare_token']}"}
    refused = requests.get(f"{platform.stack.api_url}/whoami", headers=spare, timeout=30)
    assert refused.status_code == 401


def test_a_revoked_token_held_by_a_tab_returns_it_to_sign_in(platform: Platform) -> None:
    measured = run_scenario(platform, "a_refused_token_in_the_tab_returns_to_sign_in")
    assert measured["message"].startswith("unauthorized:")


def test_the_app_page_fits_a_phone(platform: Platform) -> None:
    run_scenario(platform, "the_apps_page_fits_a_phone")


def test_signing_in_and_opening_an_app_work_from_the_keyboard(platform: Platform) -> None:
    run_scenario(platform, "every_action_is_reachable_by_keyboard")


def test_roll_back_from_the_page_and_see_the_new_release(platform: Platform) -> None:
    measured = run_scenario(platform, "roll_back_from_the_page")
    rolled = measured["deployment_id"]
    api = platform.stack.api_url
    headers = {"Authorization": f"Bearer {platform.context['admin_token']}"}
    deployment = requests.get(f"{api}/deployments/{rolled}", headers=headers, timeout=30).json()
    assert deployment["rollback_of"] == platform.context["rollback_to"]
    assert deployment["status"] == "succeeded"
    wait_for(
        lambda: requests.get(platform.context["chatty_url"], timeout=30).text == "chatty 1\n",
        timeout=60,
        what="the first version to answer again",
    )
