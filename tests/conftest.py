import os

# scikit-learn's check_array_api_input (run by parametrize_with_checks) skips
# itself unless SciPy's array API mode is on; turn it on so the check runs.
# It must be set before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
